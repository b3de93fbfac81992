import { tf, type Scalar, type Tensor1D } from '../backend/tf.js';

export type DpoLossKind = 'sigmoid' | 'ipo';

/** Summed response log-probabilities [N] of the chosen and rejected responses under the policy and the reference. */
export interface PairLogps {
  policyChosen: Tensor1D;
  policyRejected: Tensor1D;
  refChosen: Tensor1D;
  refRejected: Tensor1D;
}

/**
 * DPO's loss over N preference pairs (Rafailov et al. 2023), and its implicit
 * rewards r = β·(log π(y|x) − log π_ref(y|x)). With h = (log π_c − log π_ref,c)
 * − (log π_r − log π_ref,r):
 *   sigmoid: mean −log σ(β·h) = mean softplus(−β·h)
 *   ipo:     mean (h − 1/(2β))²  (Azar et al. 2023; summed, not length-averaged, log-probs)
 * Call inside tf.tidy or variableGrads.
 */
export function dpoLoss(l: PairLogps, beta: number, kind: DpoLossKind): { loss: Scalar; chosenRewards: Tensor1D; rejectedRewards: Tensor1D } {
  const chosenRatio = tf.sub(l.policyChosen, l.refChosen);
  const rejectedRatio = tf.sub(l.policyRejected, l.refRejected);
  const h = tf.sub(chosenRatio, rejectedRatio);
  const loss = kind === 'sigmoid' ? tf.mean(tf.softplus(tf.mul(h, -beta))) : tf.mean(tf.square(tf.sub(h, 1 / (2 * beta))));
  return { loss: loss as Scalar, chosenRewards: tf.mul(chosenRatio, beta) as Tensor1D, rejectedRewards: tf.mul(rejectedRatio, beta) as Tensor1D };
}
