// react-router (v6) is a dependency of react-router-dom only, so TypeScript cannot resolve it from this
// package; the host passes the module to SystemJS as it is and needs no types of it.
declare module 'react-router';
