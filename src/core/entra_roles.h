/*
 * Template ids of the Microsoft Entra built-in roles ("Microsoft Entra built-in roles"
 * reference) that the seed's "Roles and permissions" table names. Analysts sign in
 * with Entra roles whatever system they act on, so the policy and every kind's default
 * role requirements (struct kind_role_req) share these.
 */
#ifndef QUELL_CORE_ENTRA_ROLES_H
#define QUELL_CORE_ENTRA_ROLES_H

#define ENTRA_ROLE_GA		"62e90394-69f5-4237-9190-012177145e10"
#define ENTRA_ROLE_UA		"fe930be7-5e62-47db-91af-98c3a49a38b1"
#define ENTRA_ROLE_AUTHA	"c4e39bd9-1100-46d3-8c65-fb160da0071f"
#define ENTRA_ROLE_PAA		"7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
#define ENTRA_ROLE_DW		"9360feb5-f418-4baa-8175-e2a00bac4301"
#define ENTRA_ROLE_HDA		"729827e3-9c14-49f7-bb1b-9608f156bbb8"
#define ENTRA_ROLE_SECA		"194ae4cb-b126-40b2-bd5b-6091b380977d"
#define ENTRA_ROLE_SECO		"5f2222b1-57c3-48ba-8ad5-d4759f1fde6f"
#define ENTRA_ROLE_SECR		"5d6b6bb7-de71-4623-b4af-96380a352509"
#define ENTRA_ROLE_GR		"f2ef992c-3afb-46b9-b7cf-a126ee74c451"

#endif
