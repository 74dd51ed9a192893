"""The hostile-input corpus (issue 19): malicious inputs, each made from valid objects with
the project's own encoders and keys, each refused with a stable code, with the receiver
alive and its state unchanged.

    table.py         the case record (name, category, boundary, what, expected code) and the
                     vocabularies of categories and boundaries
    mutate.py        byte surgery on valid keys, signatures, ciphertexts and frames
    nodeworld.py     the real nodes (module-scoped) and the before/after state of a node
    node_frames.py   client frames to a node
    node_fed.py      signed federation requests to a node
    client_*.py      envelopes, prekey bundles and key documents to a client's cores
    test_*.py        one parametrised test per boundary, and a check of the table itself
"""
