"""Identity and access: users, credentials, sessions, MFA, roles and the tokens that carry them."""
