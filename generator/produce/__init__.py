"""Production of stimulus sets: ``jobs`` (designs -> jobs, file collection, labels), ``batch`` (jobs ->
mp4 files + manifest: resumable, parallel, sharded), ``cli`` (`emostudy generate`), ``render_cli``
(`emostudy render`, one clip), ``demo_assets`` and ``demo_inputs`` (the demo's faces and synthetic
speech). Renderers are reached through ``generator.renderers.get_renderer``. Stands on ``check/`` (the
optional check after production), ``data/`` (speech synthesis) and the floor."""
