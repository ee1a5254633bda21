"""HTTP plumbing shared by the participant and admin surfaces: bounded JSON bodies (``bodies``), security
headers, rate limits and the proxy settings (``security``).

Stands on ``core``.
"""
