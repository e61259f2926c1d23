"""Client plumbing for the external systems backends store data in: object stores (local
files and obstore's remote stores), LMDB, PostgreSQL, NATS, gRPC channels and the BlobChunk
wire codec. Nothing here implements a service interface; backends import drivers, never each
other (tests/test_layering.py keeps it so)."""
