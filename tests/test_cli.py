import subprocess
import sys

from click.testing import CliRunner

from emostudy.cli import COMMANDS, main


def test_help_lists_every_subcommand():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_help_does_not_import_torch_or_flask():
    code = ("import sys; from click.testing import CliRunner; from emostudy.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0; "
            "print(sorted(m for m in ('torch', 'flask', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
