"""`python -m generator.produce.demo_inputs --faces DIR --speech DIR`: the demo's inputs, made on this machine.

Thin over ``generator.produce.demo_assets`` so that the demo (``emostudy demo``) can make its inputs in a child
process, like every other step of its pipeline.
"""

from __future__ import annotations

from pathlib import Path

import click

from generator.produce.demo_assets import make_face_pool, make_speech_pool


@click.command()
@click.option("--faces", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--speech", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--sentences", default="IEO,TIE,DFA", show_default=True, help="CREMA-D sentence codes to synthesise.")
def main(faces: Path, speech: Path, sentences: str) -> None:
    face_paths = make_face_pool(faces)
    speech_paths = make_speech_pool(speech, sentences=[s for s in sentences.split(",") if s.strip()])
    click.echo(f"demo inputs: {len(face_paths)} face photos in {faces}, {len(speech_paths)} synthetic speech files "
               f"in {speech}")


if __name__ == "__main__":  # pragma: no cover
    main()
