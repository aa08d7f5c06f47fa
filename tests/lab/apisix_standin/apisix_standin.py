"""The lab's stand-in for the Apache APISIX binary (tests only, never shipped): /usr/bin/apisix runs this file
with /usr/bin/python3; the program is the package standin/ beside it (README.md)."""

import sys

from standin.cli import main

if __name__ == '__main__':
    sys.exit(main(sys.argv))
