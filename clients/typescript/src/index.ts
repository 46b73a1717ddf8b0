export {
  type AnswerOf,
  type Availability,
  type BodyOf,
  CheckoutDenied,
  type CheckoutOrder,
  type ClientOptions,
  CustodyClient,
  CustodyError,
  type Denial,
  type Explanation,
  type Lease,
  type LeaseCheck,
  LeaseLost,
  type Outcome,
  type Problem,
  type ProfileRecord,
  type ProfileState,
  type ReleaseResult,
  type Schemas,
  ServiceTimedOut,
  ServiceUnreachable,
  StoreUnavailable,
  UnreadableAnswer,
} from "./client.js";
export type { components, paths } from "./openapi.js";
export { type ClaimOptions, claim, LaunchRefused, MARKER, type Marker } from "./marker.js";
export { Terminated } from "./termination.js";
export {
  type BrowserOptions,
  DIRECT,
  type ProxyResolver,
  type ProxySettings,
  type Evidence,
  ProfileLeases,
  type ProfileLeasesOptions,
  type StepOptions,
  WorkerLease,
} from "./worker.js";
