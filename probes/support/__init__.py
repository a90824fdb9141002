"""Code that only probes use: certificate reading and analysis, revocation (OCSP, CRL), STARTTLS
dialogues, and the shared SNMP engine. Not probe kinds: the registry lists none of these."""
