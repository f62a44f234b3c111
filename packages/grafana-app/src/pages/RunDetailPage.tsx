import React from 'react';

/** To be built. */
export function RunDetailPage() {
  return <div>RunDetailPage</div>;
}
