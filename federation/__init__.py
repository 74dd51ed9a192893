"""Server keys, keyring, request signing, routing, outbound queues and policy."""
