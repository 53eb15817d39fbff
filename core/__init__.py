"""stixbridge: STIX 2.x threat intelligence from an alliance into Splunk, Elasticsearch and MISP."""

__version__ = "0.1.0"
