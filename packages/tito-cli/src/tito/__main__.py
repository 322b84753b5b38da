"""`python -m tito`: the same as the `tito` console script."""

from tito.main import main

if __name__ == "__main__":
    main()
