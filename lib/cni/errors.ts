// CNI error results (spec section "Error"): one error type, printed as JSON on stdout.
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  LimitedConnectivity: 51,
  // 100+ are ours.
  PseudowireUnknown: 100,
  InterfaceExists: 101,
  DeviceBusy: 102,
  MtuTooLarge: 103,
  LinkSetupFailed: 104,
  CheckFailed: 105,
  SessionDown: 106,
  DelegateFailed: 107,
  ProtocolMismatch: 108,
  NamespaceNotAllowed: 109,
  Internal: 199,
} as const;
export type CniCodeValue = (typeof CniCode)[keyof typeof CniCode];

export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details?: string,
  ) {
    super(msg);
    this.name = 'CniError';
  }

  toJSON(cniVersion: string): CniErrorJson {
    const out: CniErrorJson = { cniVersion, code: this.code, msg: this.message };
    if (this.details !== undefined && this.details !== '') out.details = this.details;
    return out;
  }

  /** Any thrown value as a CniError: CniErrors pass through, anything else is internal (199). */
  static from(e: unknown, fallbackCode: number = CniCode.Internal): CniError {
    if (e instanceof CniError) return e;
    const msg = e instanceof Error ? e.message : String(e);
    return new CniError(fallbackCode, msg);
  }
}
