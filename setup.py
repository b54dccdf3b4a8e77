"""Build of the smartbus package: the Cython binding with the bundled C SDK
(vendor/smartbus-sdk) compiled in, with hidden symbols.

Knobs (environment variables, since pip cannot pass build flags easily):
  SMARTBUS_WERROR=1    compile the C SDK with -Werror (tests and CI do)
  SMARTBUS_SANITIZE=1  build with AddressSanitizer + UndefinedBehaviorSanitizer
                       (SMARTBUS_SANITIZE=thread: ThreadSanitizer, .ci/tsan)
  SMARTBUS_DEBUG=1     -O0 -g, and Cython annotations
  SMARTBUS_PORTABLE=1  the C SDK without its Linux fast paths (eventfd,
                       MSG_NOSIGNAL, condition variables on CLOCK_MONOTONIC):
                       the POSIX fallbacks macOS uses run instead
                       (vendor/smartbus-sdk/src/platform.h, .ci/portable)
"""

import glob
import os

from Cython.Build import cythonize   # a build requirement (pyproject.toml)
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SDK = os.path.join("vendor", "smartbus-sdk")
SDK_SOURCES = sorted(glob.glob(os.path.join(SDK, "src", "*.c")))
INCLUDES = [os.path.join(SDK, "include"), os.path.join(SDK, "src")]
SDK_HEADERS = [os.path.join(d, h) for d in INCLUDES for h in sorted(os.listdir(d))
               if h.endswith(".h")]
# the binding's parts, included into smartbus/_native.pyx (.pyx) or by them (.h)
BINDING_PARTS = [os.path.join("smartbus", "native", name)
                 for name in sorted(os.listdir(os.path.join("smartbus", "native")))]


def flag(name):
    return os.environ.get(name, "") not in ("", "0")


COMMON = ["-DSMARTBUS_STATIC", "-fvisibility=hidden", "-pthread"]
_SANITIZERS = "thread" if os.environ.get("SMARTBUS_SANITIZE") == "thread" else "address,undefined"
SANITIZE = ["-fsanitize=" + _SANITIZERS, "-fno-omit-frame-pointer", "-g"]
# Python's own CFLAGS carry -g: release builds (wheels) drop the debug info
# with -g0 (the extension shrinks from 2.2 MB to a few hundred kB)
OPT = ["-O0", "-g"] if flag("SMARTBUS_DEBUG") else ["-O2", "-g0"]


class BuildExt(build_ext):
    """Compiles the C SDK with strict C99 flags of its own, then the binding."""

    def build_extension(self, ext):
        sdk_flags = ["-std=c99", "-Wall", "-Wextra", "-pedantic"] + COMMON + OPT
        if flag("SMARTBUS_WERROR"):
            sdk_flags.append("-Werror")
        if flag("SMARTBUS_SANITIZE"):
            sdk_flags += SANITIZE
        if flag("SMARTBUS_PORTABLE"):
            sdk_flags.append("-DSB_PORTABLE")
        objects = self.compiler.compile(SDK_SOURCES, output_dir=self.build_temp,
                                        include_dirs=INCLUDES, extra_postargs=sdk_flags,
                                        depends=SDK_HEADERS)
        ext.extra_objects = objects
        # relink when only the C SDK changed (build_ext compares sources + depends)
        ext.depends = list(ext.depends) + objects
        super().build_extension(ext)


ext_args = COMMON + OPT + (SANITIZE if flag("SMARTBUS_SANITIZE") else [])
link_args = ["-pthread"] + (["-fsanitize=" + _SANITIZERS] if flag("SMARTBUS_SANITIZE") else [])

extensions = [
    # depends: rebuild when a part of the binding changes; relink when the SDK
    # changes (its objects are extra_objects)
    Extension("smartbus._native", ["smartbus/_native.pyx"], include_dirs=INCLUDES,
              depends=BINDING_PARTS + SDK_SOURCES + SDK_HEADERS, extra_compile_args=ext_args,
              extra_link_args=link_args),
]

extensions = cythonize(extensions, language_level=3, annotate=flag("SMARTBUS_DEBUG"),
                       compiler_directives={"embedsignature": True})

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
