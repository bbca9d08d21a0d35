from personcut.cli import main

raise SystemExit(main())
