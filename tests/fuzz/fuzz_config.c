/*
 * quelld.conf as an administrator (or whoever can write the file) writes it: the INI
 * parser, then every module that validates its sections (access policy, correlation,
 * automatic disruption) with the kinds built in, as the daemon loads them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/correlate.h"
#include "core/disruption_rules.h"
#include "core/policy.h"
#include "fuzz.h"
#include "providers/provider.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct disruption_policy *dp = NULL;
	struct policy *pol = NULL;
	struct corr_rules cr;
	struct config cfg;
	struct qerr e;
	char *text = fuzz_text(data, size);

	if (text == NULL)
		return 0;
	qerr_clear(&e);
	if (config_parse("fuzz.conf", text, &cfg, &e) == 0) {
		cfg.kinds = provider_kinds();
		if (policy_load(&cfg, &pol, &e) == 0)
			policy_free(pol);
		(void)corr_rules_load(&cfg, &cr, &e);
		if (disruption_policy_load(&cfg, &dp, &e) == 0)
			disruption_policy_free(dp);
		config_clear(&cfg);
	} else
		fuzz_check(e.msg[0] != '\0', "a refused configuration says why");
	free(text);
	return 0;
}
