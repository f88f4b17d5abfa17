"""Policy apart from mechanism (as in Spin): which capabilities a call holds and where egress may go.
Pure, stdlib only; host functions ask, never decide."""
