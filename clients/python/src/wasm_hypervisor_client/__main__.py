"""`python -m wasm_hypervisor_client …` is the command line."""

import sys

from .cli import main

sys.exit(main())
