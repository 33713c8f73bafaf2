/*
 * Escaping of values for LDAP distinguished names (RFC 4514) and search filters
 * (RFC 4515), and the text forms Active Directory shows for objectGUID and objectSid.
 * Pure functions: no I/O, no global state. Inputs are treated as hostile.
 */
#ifndef QUELL_CORE_LDAPESC_H
#define QUELL_CORE_LDAPESC_H

#include <stddef.h>

#define LDAPESC_GUID_LEN	16
#define LDAPESC_GUID_TEXT_LEN	36	/* 8-4-4-4-12 hex digits with hyphens */

/*
 * Escapes len bytes of val as one RFC 4514 attribute value: the specials
 * " + , ; < > \ with a backslash, a leading '#' or space and a trailing space with a
 * backslash, NUL and other control bytes as \xx; UTF-8 is kept as is.
 * Sets *out to a NUL-terminated string the caller frees; returns 0 or QERR_NOMEM.
 */
int ldapesc_dn_value(const char *val, size_t len, char **out);

/*
 * Escapes len bytes of val for use as an RFC 4515 assertion value: * ( ) \ NUL, other
 * control bytes and every byte >= 0x80 become \xx.
 * Sets *out to a NUL-terminated string the caller frees; returns 0 or QERR_NOMEM.
 */
int ldapesc_filter_value(const char *val, size_t len, char **out);

/*
 * Escapes every one of len bytes as \xx, for binary assertion values (objectGUID).
 * Sets *out to a NUL-terminated string the caller frees; returns 0 or QERR_NOMEM.
 */
int ldapesc_filter_binary(const void *buf, size_t len, char **out);

/*
 * The canonical text of a 16-byte objectGUID as AD shows it: the first three fields
 * are stored little-endian, the last two in byte order; lowercase hex.
 * out must hold LDAPESC_GUID_TEXT_LEN + 1 bytes. Returns 0, or QERR_INVALID when
 * len is not 16 (out is then the empty string).
 */
int ldapesc_guid_to_text(const void *bin, size_t len, char *out);

/*
 * The reverse of ldapesc_guid_to_text: parses exactly 36 characters (either case)
 * into out[LDAPESC_GUID_LEN]. Returns 0 or QERR_INVALID.
 */
int ldapesc_guid_from_text(const char *text, unsigned char *out);

/*
 * The S-1-… text of a binary objectSid: revision 1, at most 15 sub-authorities and a
 * length that matches their count exactly. An identifier authority >= 2^32 is printed
 * in hex (0x…) as Windows does.
 * Sets *out to a NUL-terminated string the caller frees; returns 0, QERR_INVALID for
 * a malformed SID or QERR_NOMEM.
 */
int ldapesc_sid_to_text(const void *bin, size_t len, char **out);

#endif
