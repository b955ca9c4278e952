from vggcore.cli.main import main

raise SystemExit(main())
