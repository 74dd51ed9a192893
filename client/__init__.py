"""End-to-end encryption and the client API: PQXDH, Double Ratchet, sealed sender."""
