"""`python -m pytvix` is `tvix-store`."""

from pytvix.cli.store import main

if __name__ == "__main__":
    main()
