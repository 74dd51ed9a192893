"""The hostile-input corpus (issue 19): malicious inputs, each made from valid objects with
the project's own encoders and keys, each refused with a stable code, with the receiver
alive and its state unchanged.

    table.py              the case record (name, category, boundary, what, expected code)
                          and the vocabularies of categories and boundaries
    corpus.py             every case, and the stable codes a case may expect
    mutate.py             byte surgery on valid keys, signatures, ciphertexts and frames
    nodeworld.py          the real nodes (module-scoped) and a node's before/after state
    node_frames.py        client frames to a node
    node_fed.py           signed federation requests to a node
    documents.py          key documents, to a client and to a node
    client_world.py       the devices attacked, and a device's before/after state
    client_envelopes.py   envelopes to a client
    client_bundles.py     prekey bundles to a client
    test_node.py          frames, requests and key documents to real nodes
    test_client.py        envelopes and bundles to a device's core
    test_documents.py     key documents to the client's checks and the node's keyring core
    test_table.py         the table's own rules (unique names, stable codes, coverage)
"""
