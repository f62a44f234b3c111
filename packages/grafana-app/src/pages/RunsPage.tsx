import React from 'react';

/** To be built. */
export function RunsPage() {
  return <div>RunsPage</div>;
}
