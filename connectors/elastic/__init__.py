"""Elasticsearch connector: indicator documents for Elastic Security and indicator-match alerts read back.

Modules: ``settings`` (the TOML tables), ``client`` (building the elasticsearch-py client and translating its
errors), ``ecs`` (one ECS document per atom), ``templates`` and ``rules`` (what ``stixbridge elastic setup``
installs), ``setup``, ``sink``, ``sightings``, ``devtools`` (the same definitions as Kibana Dev Tools text)
and ``cli``.
"""
