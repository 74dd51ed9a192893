"""Rules that clients and servers both check, each in one place (DESIGN section 2).

``trust.documents``     server key documents: verification, root certifications, pins,
                        refresh and rollback
``trust.routing``       the routing layer's AAD and the choice of the KEM key to seal to
``trust.certificates``  sender certificates: signing and checking
``trust.media``         a node's QUIC endpoint in its key document, and the pin to connect with
``trust.peerlink``      node-to-node QUIC links: the connecting node proves its domain
``trust.limits``        every bound both sides enforce
``trust.errors``        the node's error codes and the errors of these rules

Imports only ``wire`` and ``suites`` (import-linter contract "trust is a leaf").
"""
