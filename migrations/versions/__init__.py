"""Migration scripts: 0001_initial (study server), 0002_recruitment (recruitment records)."""
