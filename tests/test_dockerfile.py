"""The hosted demo's Dockerfile and Space metadata (docker build cannot run here: parse and check)."""

from __future__ import annotations

import json
import re

from tests.conftest import REPO


def instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_port_user_and_command():
    ins = instructions()
    ops = [op for op, _ in ins]
    assert ins[0] == ("FROM", "python:3.11-slim")
    assert ("EXPOSE", "8501") in ins
    users = [arg for op, arg in ins if op == "USER"]
    assert users and users[-1] in ("1000", "user")
    assert any(op == "RUN" and "--uid 1000" in arg and "user" in arg for op, arg in ins)
    cmd = json.loads(dict(ins)["CMD"])
    assert cmd[:3] == ["streamlit", "run", "app.py"]
    assert cmd[cmd.index("--server.port") + 1] == "8501" and cmd[cmd.index("--server.address") + 1] == "0.0.0.0"
    # requirements.txt is copied and installed before the app, so code edits keep the pip layer cached
    copies = [i for i, (op, _) in enumerate(ins) if op == "COPY"]
    assert "requirements.txt" in ins[copies[0]][1]
    pip = next(i for i, (op, arg) in enumerate(ins) if op == "RUN" and "pip install" in arg)
    assert copies[0] < pip < copies[1] and ops.index("CMD") == len(ops) - 1
    env = " ".join(arg for op, arg in ins if op == "ENV")
    assert re.search(r"GM_DEMO=1\b", env)


def test_space_metadata():
    text = (REPO / ".hf-space" / "README.md").read_text()
    front = text.split("---")[1]
    assert re.search(r"^sdk: docker$", front, re.M) and re.search(r"^app_port: 8501$", front, re.M)


def test_demo_caps_fid_n(monkeypatch):
    from pages import _ui
    monkeypatch.delenv("GM_DEMO", raising=False)
    assert max(_ui.fid_sizes()) == 10000
    monkeypatch.setenv("GM_DEMO", "1")
    assert max(_ui.fid_sizes()) == _ui.DEMO_MAX_FID_N == 2000 and 1000 in _ui.fid_sizes()
