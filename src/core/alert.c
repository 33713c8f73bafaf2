/* Names of alert severities and categories, and freeing of the alert structs. */
#include <stdlib.h>
#include <string.h>

#include "alert.h"

static const char *const severity_names[ALERT_SEV_COUNT] = {
	[ALERT_SEV_INFORMATIONAL] = "informational",
	[ALERT_SEV_LOW] = "low",
	[ALERT_SEV_MEDIUM] = "medium",
	[ALERT_SEV_HIGH] = "high",
};

/* The attack types Microsoft's automatic attack disruption acts on, and a few more
 * that detection sources commonly send; blast_radius is quell's own. */
static const char *const categories[] = {
	"ransomware", "business_email_compromise", "adversary_in_the_middle",
	"password_spray", "credential_theft", "lateral_movement", "privilege_escalation",
	"data_exfiltration", "malware", "suspicious_activity", "blast_radius",
};

const char *
alert_severity_name(enum alert_severity s)
{
	return (unsigned)s < ALERT_SEV_COUNT ? severity_names[s] : "unknown";
}

int
alert_severity_parse(const char *name, enum alert_severity *out)
{
	int i;

	for (i = 0; name != NULL && i < ALERT_SEV_COUNT; i++)
		if (strcmp(name, severity_names[i]) == 0) {
			*out = (enum alert_severity)i;
			return 0;
		}
	return -1;
}

bool
alert_category_valid(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof(categories) / sizeof(categories[0]); i++)
		if (strcmp(name, categories[i]) == 0)
			return true;
	return false;
}

const char *
alert_categories(void)
{
	return "ransomware business_email_compromise adversary_in_the_middle "
	    "password_spray credential_theft lateral_movement privilege_escalation "
	    "data_exfiltration malware suspicious_activity blast_radius";
}

int
alert_confidence_word(const char *word)
{
	if (word == NULL)
		return -1;
	if (strcmp(word, "low") == 0)
		return 30;
	if (strcmp(word, "medium") == 0)
		return 60;
	if (strcmp(word, "high") == 0)
		return 90;
	return -1;
}

void
alert_entity_clear(struct alert_entity *en)
{
	if (en == NULL)
		return;
	free(en->kind);
	free(en->id_type);
	free(en->value);
	free(en->identity_id);
	free(en->account_id);
	free(en->resolution);
	memset(en, 0, sizeof(*en));
}

void
alert_clear(struct alert *a)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->nentities; i++)
		alert_entity_clear(&a->entities[i]);
	free(a->entities);
	free(a->id);
	free(a->source);
	free(a->external_id);
	free(a->title);
	free(a->category);
	memset(a, 0, sizeof(*a));
}

void
alert_decision_clear(struct alert_decision *d)
{
	if (d == NULL)
		return;
	free(d->id);
	free(d->alert_id);
	free(d->identity_id);
	free(d->rule);
	free(d->outcome);
	free(d->detail);
	memset(d, 0, sizeof(*d));
}
