"""The relay server: client protocol, mailboxes, storage backends, blobs."""
