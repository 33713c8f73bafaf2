/*
 * The bash completion script, written from the command table so that a command or
 * option added to cmdtab.c completes without anyone remembering to edit a script.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"

struct buf {
	char *s;
	size_t len, cap;
	bool failed;
};

static void put(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t need;
	char *grown;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (b->failed || n < 0) {
		b->failed = true;
		return;
	}
	need = b->len + (size_t)n + 1;
	if (need > b->cap) {
		if ((grown = realloc(b->s, need * 2)) == NULL) {
			b->failed = true;
			return;
		}
		b->s = grown;
		b->cap = need * 2;
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Each distinct first word, then help; and the second words of `word`. */
static void
put_words(struct buf *b, const struct cli_cmd *t, size_t n, const char *word)
{
	size_t k, j;
	bool seen;

	for (k = 0; k < n; k++) {
		if (word != NULL) {
			if (t[k].sub != NULL && strcmp(t[k].word, word) == 0)
				put(b, " %s", t[k].sub);
			continue;
		}
		for (seen = false, j = 0; j < k && !seen; j++)
			seen = strcmp(t[j].word, t[k].word) == 0;
		if (!seen)
			put(b, " %s", t[k].word);
	}
	if (word == NULL)
		put(b, " help");
}

static void
put_opts(struct buf *b, const struct cli_cmd *c)
{
	const struct cli_optspec *s;

	put(b, "\t\"%s %s\"%s) opts=\"$opts", c->word, c->sub ? c->sub : "",
	    c->sub ? "" : "*");
	for (s = c->opts; s->name != NULL; s++)
		put(b, strcmp(s->name, "yes") == 0 ? " --yes -y" : " --%s", s->name);
	put(b, "\" ;;\n");
}

char *
cli_completion_bash(void)
{
	const struct cli_cmd *t;
	struct buf b = { 0 };
	size_t n, k;

	t = cli_commands(&n);
	put(&b, "# bash completion for quell(1), written by `quell completion bash`.\n"
	    "_quell()\n{\n"
	    "\tlocal cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"${COMP_WORDS[1]}\"\n"
	    "\tlocal sub=\"${COMP_WORDS[2]}\" opts=\"--json --url --token-file --ca --wide"
	    " --help\"\n"
	    "\tif [ \"$COMP_CWORD\" -eq 1 ] || { [ \"$cmd\" = help ] &&"
	    " [ \"$COMP_CWORD\" -eq 2 ]; }; then\n"
	    "\t\tCOMPREPLY=($(compgen -W \"");
	put_words(&b, t, n, NULL);
	put(&b, "\" -- \"$cur\"))\n\t\treturn\n\tfi\n\tif [ \"$COMP_CWORD\" -eq 2 ]; then\n"
	    "\t\tcase \"$cmd\" in\n");
	for (k = 0; k < n; k++)
		if (t[k].sub != NULL && (k == 0 || t[k - 1].sub == NULL ||
		    strcmp(t[k - 1].word, t[k].word) != 0)) {
			put(&b, "\t\t%s) COMPREPLY=($(compgen -W \"", t[k].word);
			put_words(&b, t, n, t[k].word);
			put(&b, "\" -- \"$cur\")) ;;\n");
		}
	put(&b, "\t\tesac\n\t\t[ \"${#COMPREPLY[@]}\" -gt 0 ] && [ \"${cur#-}\" = \"$cur\" ]"
	    " && return\n\tfi\n\tcase \"$cmd $sub\" in\n");
	/* Two-word commands first: "audit verify" before "audit *". */
	for (k = 0; k < n; k++)
		if (t[k].sub != NULL)
			put_opts(&b, &t[k]);
	for (k = 0; k < n; k++)
		if (t[k].sub == NULL)
			put_opts(&b, &t[k]);
	put(&b, "\tesac\n\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n}\n"
	    "complete -F _quell quell\n");
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}
