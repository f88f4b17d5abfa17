// jco componentize bundles src/handler.ts with rolldown; the alga:extension/* imports are the
// component's WIT imports (the runner provides them), not npm packages.
export default {
  external: [/^alga:extension\//],
};
