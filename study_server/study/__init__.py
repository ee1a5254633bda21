"""The study's state and its rules, shared by every surface: a plan imported and viewed (``studies``),
media copies and their signed URLs (``media``), arrivals and platforms (``platforms``, ``platform_ids``,
``lab_tokens``), the assignment of places (``assignment``), answers and the evidence of watching
(``answers``, ``watching``, ``fetch_table``), the listening checks' sounds and keys (``listening_sounds``,
``audio_check``), the per-request cache of a study (``context``) and the verdict at completion
(``consistency``).

Stands on ``store`` and ``core``; knows nothing of HTTP routes, the admin or the recruiters.
"""
