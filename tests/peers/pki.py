"""The test PKI is the demo lab's (`monitor.lab.pki`): re-exported so tests keep importing it
from their peers."""

from monitor.lab.pki import Issued, make_ca, make_leaf, revocation_urls, server_context

__all__ = ["Issued", "make_ca", "make_leaf", "revocation_urls", "server_context"]
