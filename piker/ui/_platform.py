"""Can Qt's `xcb` platform plugin load here? Ask before Qt does.

PyQt5's wheel bundles Qt but not the X11 helper libraries its `xcb`
plugin links against. On a minimal Linux one of them is missing and Qt
prints `Could not load the Qt platform plugin "xcb"` with a list of every
plugin it knows, then aborts the process (no Python exception to catch).
`missing_xcb_libs()` dlopens the same sonames first, so `piker chart` can
print one line naming the `apt` command instead. It is Qt-free and costs
well under a millisecond.
"""
from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable

# soname -> Debian/Ubuntu package; the sonames are the DT_NEEDED entries of
# PyQt5's libqxcb.so that no base X11 install is guaranteed to have
XCB_LIBS: dict[str, str] = {
    'libxcb-icccm.so.4': 'libxcb-icccm4',
    'libxcb-image.so.0': 'libxcb-image0',
    'libxcb-keysyms.so.1': 'libxcb-keysyms1',
    'libxcb-randr.so.0': 'libxcb-randr0',
    'libxcb-render-util.so.0': 'libxcb-render-util0',
    'libxcb-shape.so.0': 'libxcb-shape0',
    'libxcb-xinerama.so.0': 'libxcb-xinerama0',
    'libxcb-xkb.so.1': 'libxcb-xkb1',
    'libxkbcommon-x11.so.0': 'libxkbcommon-x11-0',
}
# the one line for the README and the hint: every package above, plus
# libxcb-cursor0 (Qt >= 6.5 needs it; harmless for Qt 5)
APT_LINE = 'sudo apt-get install ' + ' '.join(
    sorted({*XCB_LIBS.values(), 'libxcb-cursor0'})
)


def uses_xcb(env: dict[str, str] | os._Environ = os.environ, platform: str = sys.platform) -> bool:
    """True if Qt will try its `xcb` plugin (Linux, `QT_QPA_PLATFORM` unset,
    empty or naming xcb first)."""
    if not platform.startswith('linux'):
        return False
    qpa = env.get('QT_QPA_PLATFORM', '').strip()
    return not qpa or qpa.split(';')[0].split(':')[0] == 'xcb'


def missing_xcb_libs(libs: Iterable[str] | None = None) -> list[str]:
    """The sonames in `libs` (default `XCB_LIBS`) the dynamic loader cannot open."""
    missing = []
    for soname in XCB_LIBS if libs is None else libs:
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(soname)
    return missing


def xcb_hint(missing: list[str]) -> str:
    """What to tell the user when `missing` (sonames) stop the xcb plugin."""
    pkgs = ', '.join(XCB_LIBS.get(m, m) for m in missing)
    return (
        f'error: Qt\'s "xcb" platform plugin cannot load: missing {pkgs}.\n'
        f'Install the X11 libraries Qt needs with:\n  {APT_LINE}\n'
        'or run headless with QT_QPA_PLATFORM=offscreen (see --screenshot).'
    )


def check_platform() -> str | None:
    """None if Qt can start its platform plugin here, else the hint to print."""
    if not uses_xcb():
        return None
    missing = missing_xcb_libs()
    return xcb_hint(missing) if missing else None
