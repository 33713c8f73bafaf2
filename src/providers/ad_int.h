/* ad.c's seam for the LDAP answers' fuzz harness (tests/fuzz/fuzz_ldap_resp.c): the
 * provider run over a handle whose other end the harness plays, with no server. */
#ifndef QUELL_PROVIDERS_AD_INT_H
#define QUELL_PROVIDERS_AD_INT_H

#include <ldap.h>

#include "providers/provider.h"

/* Puts ld, connected and treated as bound, in p's pool in place of the first
 * connection (unbinding what that held); p owns ld from then on. */
void ad_adopt(struct provider *p, LDAP *ld);

#endif
