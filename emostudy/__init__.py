"""The application shell: the `emostudy` command table and the demo.

The only package that may import all four others (stimuli, generator, study_server, analysis); it
holds no work of its own beyond wiring them together (ARCHITECTURE.md)."""
