"""Running `nas` in-process the way a user would, capturing what they would see."""

from nas.cli import main


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of `nas argv...`; argparse exits are caught too."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
