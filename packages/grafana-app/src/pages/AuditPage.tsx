import React from 'react';

/** To be built. */
export function AuditPage() {
  return <div>AuditPage</div>;
}
