"""``python -m trl_token_ext.demo [options]``: the same as ``trl-token demo``."""

from trl_token_ext.demo.run import main

main()
