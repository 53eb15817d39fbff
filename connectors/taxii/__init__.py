"""TAXII 2.1 and 2.0: the feed source, the publisher, and a local medallion server for tests and the demo."""
