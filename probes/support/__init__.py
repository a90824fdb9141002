"""Code that only probes use: certificate reading and analysis, revocation (OCSP, CRL), TLS
contexts and handshakes, STARTTLS dialogues, and the shared SNMP engine. Not probe kinds: the
registry lists none of these. The private APIs of libraries (ssl, pysnmp, cryptography) are
reached only through the *_compat modules, each pinned by a test of its own."""
