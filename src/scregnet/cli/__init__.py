"""Command-line interface: one module per subcommand (``add_arguments(parser)`` + ``main(args)``)."""
