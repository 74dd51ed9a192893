"""The node's client-protocol connection core, without I/O (h11's model).

    state   the states, events, transition tables and close codes, as data
    errors  LocalProtocolError (the node's mistake) / RemoteProtocolError (the client's)
    core    ConnCore: bytes and time in, actions out (Reply, Perform, StartLogin,
            ReadMailbox, Close)
    push    PushQueue: catch-up from the store and the in-memory fast path

The trio shell that performs the actions is ``node.session`` (the relay and store calls)
with ``node.connection`` (the WebSocket).
"""
