from sealrelay.cli import main

raise SystemExit(main())
