"""One module per `nas` subcommand; each defines `register(subparsers)`."""
