"""sshd's effective configuration: Debian's real default file, Include/Match rules, sshd -T as oracle."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmimage.facts._includes import IncludeError
from vmimage.facts.sshd import read_sshd_config, split_line
from vmimage.targets.rootdir import RootDirTarget

# /etc/ssh/sshd_config as Debian 12's openssh-server (1:9.2p1-2+deb12u*) installs it.
DEBIAN12_SSHD_CONFIG = """\

# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

# This sshd was compiled with PATH=/usr/local/bin:/usr/bin:/bin:/usr/games

# The strategy used for options in the default sshd_config shipped with
# OpenSSH is to specify options with their default value where
# possible, but leave them commented.  Uncommented options override the
# default value.

Include /etc/ssh/sshd_config.d/*.conf

#Port 22
#AddressFamily any
#ListenAddress 0.0.0.0
#ListenAddress ::

#HostKey /etc/ssh/ssh_host_rsa_key
#HostKey /etc/ssh/ssh_host_ecdsa_key
#HostKey /etc/ssh/ssh_host_ed25519_key

# Ciphers and keying
#RekeyLimit default none

# Logging
#SyslogFacility AUTH
#LogLevel INFO

# Authentication:

#LoginGraceTime 2m
#PermitRootLogin prohibit-password
#StrictModes yes
#MaxAuthTries 6
#MaxSessions 10

#PubkeyAuthentication yes

# Expect .ssh/authorized_keys2 to be disregarded by default in future.
#AuthorizedKeysFile	.ssh/authorized_keys .ssh/authorized_keys2

#AuthorizedPrincipalsFile none

#AuthorizedKeysCommand none
#AuthorizedKeysCommandUser nobody

# For this to work you will also need host keys in /etc/ssh/ssh_known_hosts
#HostbasedAuthentication no
# Change to yes if you don't trust ~/.ssh/known_hosts for
# HostbasedAuthentication
#IgnoreUserKnownHosts no
# Don't read the user's ~/.rhosts and ~/.shosts files
#IgnoreRhosts yes

# To disable tunneled clear text passwords, change to no here!
#PasswordAuthentication yes
#PermitEmptyPasswords no

# Change to yes to enable challenge-response passwords (beware issues with
# some PAM modules and threads)
KbdInteractiveAuthentication no

# Kerberos options
#KerberosAuthentication no
#KerberosOrLocalPasswd yes
#KerberosTicketCleanup yes
#KerberosGetAFSToken no

# GSSAPI options
#GSSAPIAuthentication no
#GSSAPICleanupCredentials yes
#GSSAPIStrictAcceptorCheck yes
#GSSAPIKeyExchange no

# Set this to 'yes' to enable PAM authentication, account processing,
# and session processing. If this is enabled, PAM authentication will
# be allowed through the KbdInteractiveAuthentication and
# PasswordAuthentication.  Depending on your PAM configuration,
# PAM authentication via KbdInteractiveAuthentication may bypass
# the setting of "PermitRootLogin prohibit-password".
# If you just want the PAM account and session checks to run without
# PAM authentication, then enable this but set PasswordAuthentication
# and KbdInteractiveAuthentication to 'no'.
UsePAM yes

#AllowAgentForwarding yes
#AllowTcpForwarding yes
#GatewayPorts no
X11Forwarding yes
#X11DisplayOffset 10
#X11UseLocalhost yes
#PermitTTY yes
PrintMotd no
#PrintLastLog yes
#TCPKeepAlive yes
#PermitUserEnvironment no
#Compression delayed
#ClientAliveInterval 0
#ClientAliveCountMax 3
#UseDNS no
#PidFile /run/sshd.pid
#MaxStartups 10:30:100
#PermitTunnel no
#ChrootDirectory none
#VersionAddendum none

# no default banner path
#Banner none

# Allow client to pass locale environment variables
AcceptEnv LANG LC_*

# override default of no subsystems
Subsystem	sftp	/usr/lib/openssh/sftp-server

# Example of overriding settings on a per-user basis
#Match User anoncvs
#	X11Forwarding no
#	AllowTcpForwarding no
#	PermitTTY no
#	ForceCommand cvs server
"""

MAIN = "/etc/ssh/sshd_config"


def put(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(needle))


def test_debian_default_config(tmp_path):
    put(tmp_path, MAIN, DEBIAN12_SSHD_CONFIG)
    (tmp_path / "etc/ssh/sshd_config.d").mkdir()
    config = read_sshd_config(RootDirTarget(tmp_path))
    assert config.exists and config.files == (MAIN,)
    assert config.get("ClientAliveInterval") is None  # only commented out
    use_pam = config.get("usepam")
    assert use_pam is not None and use_pam.value == "yes" and use_pam.keyword == "UsePAM"
    assert use_pam.line == line_of(DEBIAN12_SSHD_CONFIG, "UsePAM")
    assert config.get("Subsystem").value == "sftp /usr/lib/openssh/sftp-server"
    assert config.get("AcceptEnv").value == "LANG LC_*"
    assert config.in_main_file("KbdInteractiveAuthentication").value == "no"


def test_drop_in_wins_over_the_main_file(tmp_path):
    """Debian includes sshd_config.d at the top, and sshd keeps the first value it reads."""
    put(tmp_path, MAIN, DEBIAN12_SSHD_CONFIG + "ClientAliveInterval 180\n")
    put(tmp_path, "/etc/ssh/sshd_config.d/50-cloudimg-settings.conf",
        "# cloud image settings\nClientAliveInterval 120\nPasswordAuthentication no\n")
    put(tmp_path, "/etc/ssh/sshd_config.d/60-later.conf", "ClientAliveInterval 60\n")
    put(tmp_path, "/etc/ssh/sshd_config.d/notes.txt", "ClientAliveInterval 1\n")
    config = read_sshd_config(RootDirTarget(tmp_path))
    effective = config.get("ClientAliveInterval")
    assert effective is not None
    assert (effective.value, effective.path, effective.line) == (
        "120", "/etc/ssh/sshd_config.d/50-cloudimg-settings.conf", 2)
    main = config.in_main_file("ClientAliveInterval")
    assert main is not None and main.value == "180" and main.path == MAIN
    assert [s.value for s in config.get_all("clientaliveinterval")] == ["120", "60", "180"]
    assert config.files == (MAIN, "/etc/ssh/sshd_config.d/50-cloudimg-settings.conf",
                            "/etc/ssh/sshd_config.d/60-later.conf")


def test_match_blocks_are_not_global(tmp_path):
    put(tmp_path, MAIN, "Match User deploy\n    ClientAliveInterval 30\n"
                        "Match all\nClientAliveInterval 180\n")
    config = read_sshd_config(RootDirTarget(tmp_path))
    effective = config.get("ClientAliveInterval")
    assert effective is not None and (effective.value, effective.line) == ("180", 4)
    assert [s.in_match for s in config.settings] == [True, False]


def test_match_in_an_included_file_ends_with_that_file(tmp_path):
    put(tmp_path, MAIN, "Include /etc/ssh/sshd_config.d/*.conf\nClientAliveInterval 200\n")
    put(tmp_path, "/etc/ssh/sshd_config.d/10-match.conf", "Match Group sftp\nX11Forwarding no\n")
    config = read_sshd_config(RootDirTarget(tmp_path))
    assert config.get("ClientAliveInterval").value == "200"
    assert config.get("X11Forwarding") is None


def test_include_inside_match_belongs_to_the_block(tmp_path):
    put(tmp_path, MAIN, "Match User admin\nInclude extra.conf\nMatch all\n"
                        "ClientAliveInterval 90\n")
    put(tmp_path, "/etc/ssh/extra.conf", "ClientAliveInterval 10\nMatch all\nClientAliveInterval 11\n")
    config = read_sshd_config(RootDirTarget(tmp_path))
    assert config.get("ClientAliveInterval").value == "90"
    assert config.files == (MAIN, "/etc/ssh/extra.conf")  # relative to /etc/ssh


def test_line_syntax_as_servconf_reads_it():
    assert split_line("ClientAliveInterval=180") == ("ClientAliveInterval", ["180"])
    assert split_line("  clientaliveinterval = 180  ") == ("clientaliveinterval", ["180"])
    assert split_line('ClientAliveInterval "180"') == ("ClientAliveInterval", ["180"])
    assert split_line("ClientAliveInterval 180 # three minutes") == ("ClientAliveInterval",
                                                                      ["180"])
    assert split_line('Banner "/etc/issue net"') == ("Banner", ["/etc/issue net"])
    assert split_line("#ClientAliveInterval 180") is None
    assert split_line("ClientAliveInterval") is None
    assert split_line("   ") is None


def test_missing_and_looping_configs(tmp_path):
    assert not read_sshd_config(RootDirTarget(tmp_path)).exists
    put(tmp_path, MAIN, "Include /etc/ssh/loop.conf\n")
    put(tmp_path, "/etc/ssh/loop.conf", "Include /etc/ssh/loop.conf\nPort 2222\n")
    # sshd stops at its depth limit and does not start: the configuration cannot be judged
    with pytest.raises(IncludeError, match=r"Include cycle: /etc/ssh/loop\.conf -> /etc/ssh/loop"):
        read_sshd_config(RootDirTarget(tmp_path))


# --- sshd -T as the oracle --------------------------------------------------------------------

_SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


@pytest.fixture(scope="module")
def host_key(tmp_path_factory):
    if _SSHD is None or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server not installed")
    key = tmp_path_factory.mktemp("hostkey") / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    trivial = key.parent / "sshd_config"
    trivial.write_text("Port 22\n")
    out = subprocess.run(_sshd_command(trivial, key), capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"sshd -T cannot run here: {out.stderr.strip()[:200]}")
    return key


def _sshd_command(config: Path, host_key: Path) -> list[str]:
    command = [_SSHD or "sshd", "-T", "-f", str(config), "-h", str(host_key)]
    if not Path("/run/sshd").is_dir():
        # sshd insists on its privilege-separation directory; give it one in a private /run
        command = ["unshare", "-m", "sh", "-c",
                   "mount -t tmpfs none /run && mkdir /run/sshd && exec \"$@\"", "sh", *command]
    return command


def sshd_effective(config: Path, host_key: Path) -> dict[str, str]:
    """``sshd -T``: the configuration sshd would run with (no connection, so no Match)."""
    out = subprocess.run(_sshd_command(config, host_key), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


_values = st.sampled_from(["30", "60", "120", "180", "235"])
_keyword = st.sampled_from(["ClientAliveInterval", "clientaliveinterval", "CLIENTALIVEINTERVAL"])
_form = st.sampled_from(["{k} {v}", "{k}={v}", "{k} = {v}", '{k} "{v}"', "\t{k}\t{v} # set"])
_setting = st.builds(lambda k, v, f: f.format(k=k, v=v), _keyword, _values, _form)
_file_body = st.lists(st.one_of(_setting, st.just("Match User bob"), st.just("Match all"),
                                st.just("X11Forwarding no"), st.just("# comment")), max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(main_before=_file_body, main_after=_file_body, include_at_top=st.booleans(),
       dropins=st.lists(_file_body, max_size=3), extra=_file_body,
       extra_at=st.integers(0, 12))
def test_effective_value_agrees_with_sshd(host_key, main_before, main_after, include_at_top,
                                          dropins, extra, extra_at):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "conf.d").mkdir()
        for k, body in enumerate(dropins):
            (root / "conf.d" / f"{k:02d}-dropin.conf").write_text("\n".join(body) + "\n")
        (root / "extra.conf").write_text("\n".join(extra) + "\n")
        include = f"Include {root}/conf.d/*.conf"
        lines = ([include] if include_at_top else []) + main_before
        lines += ["Match all"] + ([] if include_at_top else [include]) + main_after
        # a second Include anywhere, possibly inside a Match block
        lines.insert(min(extra_at, len(lines)), f"Include {root}/extra.conf")
        main = root / "sshd_config"
        main.write_text("\n".join(lines) + "\n")
        ours = read_sshd_config(RootDirTarget("/"), str(main)).get("ClientAliveInterval")
        expected = sshd_effective(main, host_key)["clientaliveinterval"]
        assert (ours.value if ours else "0") == expected


def test_debian_default_agrees_with_sshd(host_key, tmp_path):
    main = tmp_path / "sshd_config"
    main.write_text(DEBIAN12_SSHD_CONFIG.replace("/etc/ssh/sshd_config.d", f"{tmp_path}/d")
                    + "ClientAliveInterval 180\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d/50-cloudimg-settings.conf").write_text("ClientAliveInterval 120\n")
    effective = sshd_effective(main, host_key)
    config = read_sshd_config(RootDirTarget("/"), str(main))
    for keyword in ("ClientAliveInterval", "UsePAM", "X11Forwarding", "PrintMotd"):
        assert config.get(keyword).value == effective[keyword.lower()]
    assert os.path.basename(config.get("ClientAliveInterval").path) == "50-cloudimg-settings.conf"
