"""``python -m txzmq2``: the same as the ``txzmq2`` command."""

from txzmq2.app.cli import main

if __name__ == "__main__":
    main()
