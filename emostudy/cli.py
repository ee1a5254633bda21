"""The one `emostudy` command. Subcommands live in their packages and are imported only when run,
so that `emostudy serve` and `emostudy analyze` never import torch."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group. Keep this table the only place that knows
# where a subcommand lives.
COMMANDS: dict[str, tuple[str, str]] = {
    "import": ("stimuli.commands:import_group", "Import recordings (a folder + labels CSV, or CREMA-D) into a stimulus set."),
    "plan": ("stimuli.commands:plan_command", "Compile a study spec + stimulus set + seed into a study plan (JSON)."),
    "render": ("generator.produce.render_cli:render_command", "Render one talking-face clip (warp or neural backend)."),
    "generate": ("generator.produce.cli:generate_command", "Produce a whole stimulus set from faces and speech."),
    "check": ("generator.check.cli:check_command", "Measure every clip of a stimulus set by machine and flag doubtful ones."),
    "prepare": ("generator.data.cli:prepare_group", "Prepare training data (CREMA-D): resample, detect, align."),
    "evaluate": ("generator.evaluate.cli:evaluate_command", "PSNR / SSIM / NLMD of generated vs ground-truth videos."),
    "train-classifier": ("generator.evaluate.cli:train_classifier_command", "Train the video emotion classifier and classify test sets."),
    "train": ("generator.neural.cli:train_command", "Train the paper's generator (three stages)."),
    "db": ("study_server.commands.server:db_group", "Database schema (Alembic migrations)."),
    "study": ("study_server.commands.server:study_group", "Import study plans into the server database."),
    "serve": ("study_server.commands.server:serve_command", "Run the study server (development server)."),
    "export": ("study_server.commands.server:export_command", "Export a study's answers, participants, plan and codebook."),
    "simulate": ("study_server.commands.simulate:simulate_command", "Send simulated participants through a study over HTTP (marked simulated)."),
    "recruit": ("study_server.commands.recruit:recruit_group", "Recruit and pay participants (MTurk, Prolific, lab links)."),
    "analyze": ("analysis.cli:analyze_command", "Write the analysis report of an export."),
    "norms": ("analysis.norms_report:norms_command", "Per-clip norms of a stimulus set from a norming study's export."),
    "select": ("stimuli.select:select_command", "A new stimulus set of the clips whose norms pass a rule (emostudy norms)."),
    "power": ("analysis.cli:power_command", "Plan the number of participants for a target effect."),
    "demo": ("emostudy.demo:demo_command", "The whole product on this machine: stimuli, study, answers, report."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, help_text = COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or module_name
            if missing.split(".")[0] in {"emostudy", "stimuli", "generator", "study_server", "analysis"}:
                raise
            return _missing_extra_command(name, help_text, missing)
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help must not import the subcommands (that would pull torch into `emostudy --help`).
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _missing_extra_command(name: str, help_text: str, missing: str) -> click.Command:
    extra = {"torch": "generator", "cv2": "generator", "dlib": "generator", "flask": "server",
             "sqlalchemy": "server", "alembic": "server", "pandas": "analysis", "statsmodels": "analysis",
             "seaborn": "analysis", "scipy": "analysis"}.get(missing.split(".")[0], "all")

    @click.command(name=name, help=help_text, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def _cmd(args: tuple[str, ...]) -> None:
        raise click.ClickException(
            f"`emostudy {name}` needs the Python package {missing!r}, which is not installed: "
            f"pip install 'emostudy[{extra}]'")

    return _cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="emostudy")
def main() -> None:
    """emostudy: perceptual studies of emotion with talking faces.

    Data flows one way: generate (or import) a stimulus set, plan a study, serve it, export the
    answers, analyze them. `emostudy demo` runs the whole path on this machine.
    """


if __name__ == "__main__":  # pragma: no cover
    main()
