"""Entry point of the stixbridge_sync modular input; its code is in bin/lib/stixbridge."""

import os
import sys

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")
# Put this app's libraries first, before any other app's copy of splunklib on the path.
sys.path.insert(0, LIB)

from stixbridge.connectors.splunk.modinput import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
