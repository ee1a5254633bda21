"""Packages meet only at files: the server and the analysis never import torch or the generator, the
analysis never imports the server, and stimuli imports none of them (ARCHITECTURE.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK = """
import sys
class _Blocked:
    def __init__(self, names): self.names = names
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in self.names:
            raise ImportError(name + ' must not be imported here')
        return None
sys.meta_path.insert(0, _Blocked(BLOCKED))
"""


def _run(code: str, blocked: set[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", f"BLOCKED = {sorted(blocked)!r}\n" + BLOCK + code],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("blocked,code", [
    ({"torch", "generator", "cv2", "dlib"},
     "from stimuli.cli import main\n"
     "from click.testing import CliRunner\n"
     "for args in (['serve', '--help'], ['export', '--help'], ['study', 'import', '--help'], ['db', 'upgrade', '--help'],"
     " ['recruit', 'sync', '--help']):\n"
     "    r = CliRunner().invoke(main, args)\n"
     "    assert r.exit_code == 0, (args, r.output, r.exception)\n"
     "from study_server.app import create_app\n"
     "import tempfile, os\n"
     "d = tempfile.mkdtemp()\n"
     "app = create_app({'TESTING': True, 'INSTANCE_PATH': d, 'SECRET_KEY': 'x'})\n"
     "import study_server.simulate, study_server.recruit.service, study_server.export\n"),
    ({"torch", "generator", "study_server", "flask", "sqlalchemy", "cv2"},
     "from stimuli.cli import main\n"
     "from click.testing import CliRunner\n"
     "r = CliRunner().invoke(main, ['analyze', '--help'])\n"
     "assert r.exit_code == 0, (r.output, r.exception)\n"
     "import analysis.report, analysis.io, analysis.figures, analysis.models, analysis.power\n"),
    ({"torch", "generator", "study_server", "analysis", "flask", "pandas"},
     "import stimuli.manifest, stimuli.plan, stimuli.spec, stimuli.designs, stimuli.imports, stimuli.commands\n"),
])
def test_package_does_not_import_across_boundaries(blocked, code):
    proc = _run(code, blocked)
    assert proc.returncode == 0, proc.stderr[-2000:]
