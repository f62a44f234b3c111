/** The sample AI-Web-Test backend of the lab (Runbooks 6–8's prevention) and its load generator. */
export { type Backend, startBackend } from './backend';
export { BackendEnv, BackendOptions, type BackendOptionsInput, parseBackendEnv } from './backend-config';
export {
  startTraffic,
  type Traffic,
  TrafficOptions,
  type TrafficOptionsInput,
  type TrafficStats,
} from './traffic';
