"""Tests of the TAXII source, publisher and local medallion server."""
